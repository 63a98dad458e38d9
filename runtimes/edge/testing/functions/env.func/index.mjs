// Reports process.env as the function sees it (at import and per request).
const atImport = process.env.ALLOWED ?? null;

export default function handler() {
  return Response.json({ atImport, env: { ...process.env } });
}
