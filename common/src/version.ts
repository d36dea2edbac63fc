export const coralVersion = "0.1.0";
