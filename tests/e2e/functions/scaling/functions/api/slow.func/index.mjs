// Waits `?ms=N` milliseconds, then answers with the request's tag and the process id.
export async function GET(request) {
  const params = new URL(request.url).searchParams;
  const ms = Number(params.get('ms') || 0);
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  return Response.json({ tag: params.get('tag'), pid: process.pid });
}
