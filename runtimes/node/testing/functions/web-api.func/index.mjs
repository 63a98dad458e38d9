// useWebApi: the default export is a Web handler even with two parameters.
export default async (request, context) =>
  Response.json({ shape: 'web-api', url: request.url, waitUntil: typeof context.waitUntil });
