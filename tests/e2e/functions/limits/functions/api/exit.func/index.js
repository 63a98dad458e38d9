// `?exit=before` ends the process before answering; `?exit=after-head` after sending the
// head and part of the body; otherwise answers with the process id.
module.exports = (req, res) => {
  if (req.query.exit === 'before') {
    setTimeout(() => process.exit(1), 20);
    return;
  }
  if (req.query.exit === 'after-head') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial body ');
    setTimeout(() => process.exit(1), 100);
    return;
  }
  res.status(200).json({ pid: process.pid });
};
