// The whole process environment of the instance.
module.exports = (req, res) => {
  res.status(200).json({ env: process.env });
};
