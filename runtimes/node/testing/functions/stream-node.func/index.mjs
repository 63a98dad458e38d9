// A (req, res) handler that writes, waits for a signal, writes again.
let release;
const released = new Promise((resolve) => (release = resolve));

export default async (req, res) => {
  if (req.url === '/release') {
    release();
    return res.end('released');
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write('first\n');
  await released;
  res.end('second\n');
};
