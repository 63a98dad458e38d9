// Takes 300 ms to initialise (top-level await) and says when it starts, so a
// test can send a request while the launcher is still specializing.
console.log('slow-init: import started');
await new Promise((resolve) => setTimeout(resolve, 300));

export default async (request) => Response.json({ body: await request.text(), url: request.url });
