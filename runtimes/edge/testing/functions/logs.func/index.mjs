// Writes to stdout and stderr while serving.
console.log('module loaded');

export default async function handler(request) {
  const { pathname } = new URL(request.url);
  console.log('line one\nline two');
  console.error('an error line');
  await new Promise((resolve) => setTimeout(resolve, 5));
  console.log(`after a timer for ${pathname}`);
  return new Response('logged');
}
