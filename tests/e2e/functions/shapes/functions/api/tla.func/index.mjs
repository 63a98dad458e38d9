// Top-level await: the module finishes loading only after this promise settles.
const settings = await new Promise((resolve) => setTimeout(() => resolve({ answer: 42 }), 100));

export default function handler(request) {
  return Response.json({ shape: 'web-function', answer: settings.answer });
}
