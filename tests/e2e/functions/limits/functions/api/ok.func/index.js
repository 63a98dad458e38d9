// The neighbour: must keep answering whatever happens to the other functions.
module.exports = (req, res) => res.status(200).send('ok');
