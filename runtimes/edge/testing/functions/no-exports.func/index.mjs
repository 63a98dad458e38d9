// Exports nothing usable.
export const config = { runtime: 'edge' };
