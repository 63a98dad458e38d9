// Reports the environment it was specialized with.
const atImport = process.env.FROM_PROJECT;

export default (req, res) => {
  const pick = (...keys) => Object.fromEntries(keys.map((k) => [k, process.env[k] ?? null]));
  res.end(
    JSON.stringify({
      atImport,
      cwd: process.cwd(),
      env: pick('FROM_PROJECT', 'FROM_CONFIG', 'OVERRIDDEN', 'VERCEL', 'VERCEL_REGION', 'VERCEL_DEPLOYMENT_ID', 'NODE_ENV'),
    }),
  );
};
