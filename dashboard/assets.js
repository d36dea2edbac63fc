// Where the built dashboard is (dashboard/dist, made by `npm run build`):
// the colony serves these files. Plain JavaScript so Node needs no build to load it.
import { fileURLToPath } from "node:url";

export const dashboardAssetsDir = fileURLToPath(new URL("./dist/", import.meta.url));
