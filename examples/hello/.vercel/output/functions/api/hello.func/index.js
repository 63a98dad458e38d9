// A Node.js function: started on the first request from a pre-warmed stem cell, stopped
// again after the keep-alive time without requests.
module.exports = (req, res) => {
  const name = typeof req.query.name === 'string' ? req.query.name : 'world';
  console.log(`greeting ${name}`); // shows up in `nimbus logs`, tagged with the request id
  res.status(200).json({
    message: `Hello, ${name}!`,
    region: process.env.VERCEL_REGION,
    environment: process.env.VERCEL_ENV,
  });
};
