// Fails in every way a handler can, except on /ok.
export default async (req, res) => {
  switch (req.url) {
    case '/sync':
      throw new Error('thrown synchronously');
    case '/async':
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new Error('rejected asynchronously');
    case '/uncaught':
      setTimeout(() => {
        throw new Error('thrown from a timer');
      }, 5);
      return;
    case '/after-headers':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial ');
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new Error('thrown after the headers');
    default:
      res.end('still serving');
  }
};
