// A classic AWS Lambda handler behind API Gateway (v1 event).
exports.handler = async (event, context) => ({
  statusCode: 201,
  headers: { 'content-type': 'application/json', 'x-aws': 'yes' },
  body: JSON.stringify({
    path: event.path,
    method: event.httpMethod,
    query: event.queryStringParameters,
    body: Buffer.from(event.body, 'base64').toString(),
    host: event.headers.host,
    remaining: context.getRemainingTimeInMillis() > 0,
  }),
});
