// Writes outside any request: once at import, and from a module-level timer that fires
// ~300 ms after import (by then the request that caused the cold start has finished).
console.log('module loaded at import');
setTimeout(() => console.log('[cron] tick outside any request'), 300);

module.exports = (req, res) => res.status(200).send('ok');
