// AWS-handler mode (spec 3.4): `awsLambdaHandler: "file.export"` calls a
// classic Lambda handler with an API-Gateway-v1-shaped event. No streaming.

import { readWholeBody } from './body.mjs';

function apiGatewayEvent(req, body) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const headers = {};
  const multiValueHeaders = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    (multiValueHeaders[name] ??= []).push(raw[i + 1]);
    headers[name] = headers[name] === undefined ? raw[i + 1] : `${headers[name]},${raw[i + 1]}`;
  }
  let queryStringParameters = null;
  let multiValueQueryStringParameters = null;
  for (const [key, value] of url.searchParams) {
    queryStringParameters ??= {};
    multiValueQueryStringParameters ??= {};
    queryStringParameters[key] = value;
    (multiValueQueryStringParameters[key] ??= []).push(value);
  }
  return {
    resource: '/{proxy+}',
    path: url.pathname,
    httpMethod: req.method,
    headers,
    multiValueHeaders,
    queryStringParameters,
    multiValueQueryStringParameters,
    pathParameters: { proxy: url.pathname.slice(1) },
    stageVariables: null,
    requestContext: { httpMethod: req.method, path: url.pathname, requestTimeEpoch: Date.now() },
    body: body.toString('base64'),
    isBase64Encoded: true,
  };
}

function lambdaContext(requestId, functionName, deadline) {
  return {
    awsRequestId: requestId,
    functionName,
    functionVersion: '$LATEST',
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

function callLambda(handler, event, context) {
  return new Promise((resolve, reject) => {
    const callback = (err, result) => (err ? reject(err) : resolve(result));
    const returned = handler(event, context, callback);
    if (returned !== null && typeof returned === 'object' && typeof returned.then === 'function') {
      returned.then(resolve, reject);
    }
  });
}

// Returns a dispatcher `(req, res, store)` for a Lambda handler function.
export function awsDispatcher(handler, { functionName, maxDurationSeconds }) {
  return async (req, res, store) => {
    const body = await readWholeBody(req);
    const event = apiGatewayEvent(req, body);
    const context = lambdaContext(store.id ?? '', functionName, Date.now() + maxDurationSeconds * 1000);
    const result = await callLambda(handler, event, context);
    const reply = typeof result === 'string' ? { statusCode: 200, body: result } : (result ?? {});
    const headers = [];
    for (const [name, value] of Object.entries(reply.headers ?? {})) headers.push(name, String(value));
    for (const [name, values] of Object.entries(reply.multiValueHeaders ?? {})) {
      for (const value of values) headers.push(name, String(value));
    }
    const text = reply.body ?? '';
    const payload = reply.isBase64Encoded ? Buffer.from(text, 'base64') : Buffer.from(String(text));
    res.writeHead(reply.statusCode ?? 200, headers);
    res.end(req.method === 'HEAD' ? undefined : payload);
  };
}
