// Writes to stdout and stderr while serving.
console.log('module loaded');

export default async (req, res) => {
  console.log('line one\nline two');
  console.error('an error line');
  process.stdout.write('partial');
  process.stdout.write(' rest\n');
  await new Promise((resolve) => setTimeout(resolve, 5));
  console.log(`after a timer for ${req.url}`);
  res.end('logged');
};
