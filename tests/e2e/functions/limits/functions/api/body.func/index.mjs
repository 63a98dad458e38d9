// Counts the bytes of the request body.
export async function POST(request) {
  let bytes = 0;
  for await (const chunk of request.body) bytes += chunk.byteLength;
  return Response.json({ bytes });
}
