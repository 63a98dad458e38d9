// Exports nothing and starts no server.
export const notAHandler = 42;
