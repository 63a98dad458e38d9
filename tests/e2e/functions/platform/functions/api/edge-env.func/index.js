// An edge function's environment: only the variables it declares (envVarsInUse), the
// platform's VERCEL* ones and its config `environment`.
export default function handler(request) {
  return Response.json({ env: { ...process.env } });
}
