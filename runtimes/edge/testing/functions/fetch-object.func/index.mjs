// Default export object with fetch(), called as a method; errors on request.
export default {
  name: 'fetch-object',
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/throw') throw new Error('fetch handler exploded');
    if (pathname === '/reject') return Promise.reject(new Error('fetch handler rejected'));
    if (pathname === '/not-a-response') return { status: 'nope' };
    if (pathname === '/undefined') return undefined;
    if (pathname === '/uncaught') {
      setTimeout(() => {
        throw new Error('thrown from a timer');
      }, 1);
      return new Promise(() => {});
    }
    return new Response(`${this.name} ${request.method} ${pathname}`);
  },
};
