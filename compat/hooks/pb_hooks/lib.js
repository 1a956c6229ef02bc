// A CommonJS module loaded with require(`${__hooks}/lib.js`) from a handler: proves that
// `require` and `__hooks` work. Not a hook file (no .pb.js suffix), so it is not loaded alone.
module.exports = {
  greet(name) {
    return `hello ${name}`;
  },
  slugify(s) {
    return String(s).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  },
};
