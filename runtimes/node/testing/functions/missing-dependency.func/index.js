// Requires a package that was not traced into the function.
const missing = require('nimbus-package-that-does-not-exist');
module.exports = (req, res) => res.end(String(missing));
