// A Web handler whose promise rejects.
export async function GET(request) {
  throw new Error('e2e: the Web handler rejected');
}
