/**
 * PNG names kept for existing callers; the decoder lives in ./image.ts (fast-png with the size bound).
 */
export { type DecodedImage, crc32, decodePng, isPng, toChannels, MAX_PNG_PIXELS } from './image.js';
