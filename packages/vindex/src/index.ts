export const VINDEX_VERSION = 2
