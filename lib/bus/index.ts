// The bus layer's public surface.
export * from './device.js';
export * from './irq.js';
export * from './bus.js';
