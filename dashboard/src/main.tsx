import { render } from "preact";
import { App } from "./app.tsx";
import "./styles.css";

// The colony's CSP allows <style> elements carrying this response's nonce
// only: stamp it on every one this page's code creates (xterm.js makes two and
// offers no nonce option), at creation, before insertion.
const styleNonce = document.querySelector<HTMLMetaElement>('meta[name="coral-style-nonce"]')?.content;
if (styleNonce) {
  const createElement = Document.prototype.createElement;
  Document.prototype.createElement = function (this: Document, tagName: string, options?: ElementCreationOptions) {
    const element = createElement.call(this, tagName, options);
    if (tagName.toLowerCase() === "style") element.setAttribute("nonce", styleNonce);
    return element;
  } as typeof Document.prototype.createElement;
}

// index.html paints a header before this script runs (first contentful paint); the app replaces it.
const root = document.getElementById("app")!;
root.textContent = "";
render(<App />, root);
