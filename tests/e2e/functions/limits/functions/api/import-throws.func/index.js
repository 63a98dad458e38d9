// Throws while the module is loaded: the function can never initialize.
throw new Error('e2e-import-marker: the module threw at import');
