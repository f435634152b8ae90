// Node module hooks: the WIT imports (`spoke:connector/http@0.1.0`, ...)
// resolve to the fake host in host.mjs, so app.js runs in plain Node.
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('spoke:connector/')) return { url: new URL('./host.mjs', import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
