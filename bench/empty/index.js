// Declares nothing: what the engine and the Node.js language host cost on their own.
require("@pulumi/pulumi");
