/** The folder of the built dashboard (index.html and assets/). */
export declare const dashboardAssetsDir: string;
