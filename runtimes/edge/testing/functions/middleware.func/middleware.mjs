// Routing middleware (spec 3.6): nothing returned means continue; a Response
// (with or without x-middleware-* headers) goes back to the worker as it is.
export default async function middleware(request) {
  const { pathname } = new URL(request.url);
  switch (pathname) {
    case '/mw/blocked':
      return new Response('blocked by middleware', { status: 403, headers: { 'x-blocked': 'yes' } });
    case '/mw/rewrite':
      return new Response(null, { headers: { 'x-middleware-rewrite': 'https://fixture.example.test/rewritten?from=mw' } });
    case '/mw/next-with-headers':
      // What NextResponse.next({ request: { headers } }) produces.
      return new Response(null, {
        headers: {
          'x-middleware-next': '1',
          'x-middleware-override-headers': 'x-user',
          'x-middleware-request-x-user': 'alice',
          'x-extra': 'added',
        },
      });
    case '/mw/null':
      return null;
    case '/mw/throw':
      throw new Error('middleware exploded');
    case '/mw/string':
      return 'not a response';
    default:
      console.log(`middleware passes ${pathname}`);
      return undefined;
  }
}
