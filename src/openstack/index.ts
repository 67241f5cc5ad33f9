export * from './config.js';
export * from './errors.js';
export * from './http.js';
export * from './keystone.js';
export * from './neutron.js';
export * from './types.js';
