// Default export object with a fetch method that relies on `this`.
let releaseWork;

export default {
  greeting: 'hello from fetch',
  async fetch(request, context) {
    const { pathname } = new URL(request.url);
    if (pathname === '/wait') {
      // Background work that outlives the response, released by /release.
      context.waitUntil(new Promise((resolve) => (releaseWork = resolve)));
      return new Response('accepted', { status: 202 });
    }
    if (pathname === '/release') {
      releaseWork?.();
      return new Response('released');
    }
    if (pathname === '/throw') throw new Error('fetch handler exploded');
    if (pathname === '/not-a-response') return { hello: 'world' };
    if (pathname === '/cookies') {
      const headers = new Headers();
      headers.append('set-cookie', 'a=1; Path=/');
      headers.append('set-cookie', 'b=2; Path=/');
      return new Response('two cookies', { headers });
    }
    return Response.json({ greeting: this.greeting, method: request.method, waitUntil: typeof context.waitUntil });
  },
};
