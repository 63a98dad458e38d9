// Says when its import starts, takes 300 ms (top-level await), then throws:
// a request sent meanwhile is held and then gets the failure. The edge tests
// use it too.
console.log('slow-fail: import started');
await new Promise((resolve) => setTimeout(resolve, 300));
throw new Error('slow failure at import');
