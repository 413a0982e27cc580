export * from './device.js';
export * from './chain.js';
export * from './virtqueue.js';
export * from './features.js';
export * from './status.js';
