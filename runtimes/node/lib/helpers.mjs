// The Vercel Node helpers (spec 3.3.3): req.query, req.cookies, req.body,
// res.status(), res.send(), res.json(), res.redirect().

import { createHash } from 'node:crypto';
import { parse as parseQueryString } from 'node:querystring';

// Thrown by the req.body getter; the launcher answers with its status and message.
export class ApiError extends Error {
  constructor(statusCode, message) {
    super(message);
    this.name = 'ApiError';
    this.statusCode = statusCode;
  }
}

function setLazyProp(obj, prop, getter) {
  Object.defineProperty(obj, prop, {
    configurable: true,
    enumerable: true,
    get() {
      const value = getter();
      Object.defineProperty(obj, prop, { configurable: true, enumerable: true, writable: true, value });
      return value;
    },
    set(value) {
      Object.defineProperty(obj, prop, { configurable: true, enumerable: true, writable: true, value });
    },
  });
}

function parseQuery(url = '/') {
  const q = url.indexOf('?');
  if (q === -1) return Object.create(null);
  const hash = url.indexOf('#', q);
  return parseQueryString(url.slice(q + 1, hash === -1 ? undefined : hash));
}

function decodeCookieValue(value) {
  if (value.length >= 2 && value.charCodeAt(0) === 0x22 && value.charCodeAt(value.length - 1) === 0x22) {
    value = value.slice(1, -1);
  }
  if (value.indexOf('%') === -1) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

// Same results as the `cookie` package's parse(): first occurrence wins,
// pairs without '=' are skipped, quoted values are unquoted.
function parseCookies(header) {
  const cookies = {};
  if (!header) return cookies;
  const text = Array.isArray(header) ? header.join(';') : header;
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    const key = pair.slice(0, eq).trim();
    if (key === '' || Object.hasOwn(cookies, key)) continue;
    cookies[key] = decodeCookieValue(pair.slice(eq + 1).trim());
  }
  return cookies;
}

function mediaType(contentType) {
  if (!contentType) return 'text/plain';
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

function parseBody(body, contentType) {
  const type = mediaType(contentType);
  if (type === 'application/json') {
    const text = body.toString();
    if (text === '') return {};
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(400, 'Invalid JSON');
    }
  }
  if (type === 'application/octet-stream') return body;
  if (type === 'application/x-www-form-urlencoded') return parseQueryString(body.toString());
  if (type === 'text/plain') return body.toString();
  return undefined;
}

function setCharset(type, charset) {
  const params = type.split(';').map((p) => p.trim()).filter((p) => p !== '');
  const kept = params.slice(1).filter((p) => !/^charset\s*=/i.test(p));
  return [params[0] ?? type, ...kept, `charset=${charset}`].join('; ');
}

function weakETag(chunk, encoding) {
  const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding);
  const hash = createHash('sha1').update(buf).digest('base64').slice(0, 27);
  return `W/"${buf.length.toString(16)}-${hash}"`;
}

function json(req, res, value) {
  const body = JSON.stringify(value);
  if (!res.getHeader('content-type')) res.setHeader('content-type', 'application/json; charset=utf-8');
  return send(req, res, body);
}

function send(req, res, body) {
  let chunk = body;
  let encoding;
  switch (typeof chunk) {
    case 'string':
      if (!res.getHeader('content-type')) res.setHeader('content-type', 'text/html');
      break;
    case 'boolean':
    case 'number':
    case 'object':
      if (chunk === null) {
        chunk = '';
      } else if (Buffer.isBuffer(chunk)) {
        if (!res.getHeader('content-type')) res.setHeader('content-type', 'application/octet-stream');
      } else {
        return json(req, res, chunk);
      }
      break;
  }
  if (typeof chunk === 'string') {
    encoding = 'utf8';
    const type = res.getHeader('content-type');
    if (typeof type === 'string') res.setHeader('content-type', setCharset(type, 'utf-8'));
  }
  let length;
  if (chunk !== undefined) {
    if (Buffer.isBuffer(chunk)) {
      length = chunk.length;
    } else if (typeof chunk === 'string') {
      chunk = Buffer.from(chunk, encoding);
      encoding = undefined;
      length = chunk.length;
    } else {
      throw new TypeError('`body` is not a valid string, object, boolean, number, Stream, or Buffer');
    }
    res.setHeader('content-length', length);
  }
  if (length !== undefined && !res.getHeader('etag')) res.setHeader('etag', weakETag(chunk, encoding));
  if (res.statusCode === 204 || res.statusCode === 304) {
    res.removeHeader('content-type');
    res.removeHeader('content-length');
    res.removeHeader('transfer-encoding');
    chunk = '';
  }
  if (req.method === 'HEAD') res.end();
  else res.end(chunk);
  return res;
}

function redirect(res, statusOrUrl, url) {
  if (typeof statusOrUrl === 'string') {
    url = statusOrUrl;
    statusOrUrl = 307;
  }
  if (typeof statusOrUrl !== 'number' || typeof url !== 'string') {
    throw new Error(
      "Invalid redirect arguments. Please use a single argument URL, e.g. res.redirect('/destination') " +
        "or use a status code and URL, e.g. res.redirect(307, '/destination').",
    );
  }
  res.writeHead(statusOrUrl, { Location: url }).end();
  return res;
}

// `body` is the whole request body when a Content-Type header was present,
// otherwise undefined (req.body is then "").
export function addHelpers(req, res, body) {
  setLazyProp(req, 'query', () => parseQuery(req.url));
  setLazyProp(req, 'cookies', () => parseCookies(req.headers.cookie));
  const contentType = req.headers['content-type'];
  setLazyProp(req, 'body', () => parseBody(body ?? Buffer.alloc(0), contentType));
  res.status = (statusCode) => {
    res.statusCode = statusCode;
    return res;
  };
  res.send = (value) => send(req, res, value);
  res.json = (value) => json(req, res, value);
  res.redirect = (statusOrUrl, url) => redirect(res, statusOrUrl, url);
}
