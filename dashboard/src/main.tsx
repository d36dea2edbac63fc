import { render } from "preact";
import { App } from "./app.tsx";
import "./styles.css";

// index.html paints a header before this script runs (first contentful paint); the app replaces it.
const root = document.getElementById("app")!;
root.textContent = "";
render(<App />, root);
