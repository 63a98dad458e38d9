// What both launchers look for in a function's module: the `default` chain
// and per-method (GET, POST, ...) exports.

export const HTTP_METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'DELETE', 'PATCH'];

export function isObjectLike(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function');
}

// [namespace, default, default.default, ...]: up to 5 unwraps, for CommonJS
// through an ESM-style namespace (`exports.default = fn` arrives as
// `namespace.default.default`) and TypeScript-style double defaults.
export function exportChain(namespace) {
  const chain = [namespace];
  let value = namespace;
  for (let i = 0; i < 5 && isObjectLike(value) && isObjectLike(value.default); i++) {
    value = value.default;
    chain.push(value);
  }
  return chain;
}

export function hasMethodExports(level) {
  return HTTP_METHODS.some((m) => typeof level[m] === 'function');
}

// A Web handler that calls the export named after the request method; a
// method without one gets 405 with `allow` listing those there are.
export function methodsHandler(exportsObject) {
  const allowed = HTTP_METHODS.filter((m) => typeof exportsObject[m] === 'function').join(', ');
  return (request, context) => {
    const method = HTTP_METHODS.includes(request.method) ? exportsObject[request.method] : undefined;
    if (typeof method !== 'function') return new Response(null, { status: 405, headers: { allow: allowed } });
    return method.call(exportsObject, request, context);
  };
}
