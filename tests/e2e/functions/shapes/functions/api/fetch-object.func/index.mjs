// A default export with a fetch method, called as a method for every HTTP method.
export default {
  name: 'fetch-object-instance',
  async fetch(request) {
    return Response.json({ shape: 'fetch-object', method: request.method, self: this.name });
  },
};
