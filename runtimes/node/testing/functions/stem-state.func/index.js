// Reports the process state it was loaded into: what the stem cell's warm-up
// (which specializes with helpers and source maps) must not leave behind.
const atImport = { env: Object.keys(process.env).sort(), sourceMaps: process.sourceMapsEnabled };

module.exports = (req, res) => {
  res.end(JSON.stringify(atImport));
};
