// Namespaces are judged by resources/ns/judge.ts (which a tree may have of its own, and which
// are refused); re-exported for the dump's and check's callers.
export { NS_KINDS, nsLink, judgeNamespaces, namespaceBlockers, ownNamespaces } from '../resources/ns/judge.js';
