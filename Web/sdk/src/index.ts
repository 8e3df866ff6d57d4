// @trustline/client: the TrustLine protocol (PROTOCOL.md) and the session clients. No DOM in here.
export * from './bytes.js';
export * from './wire.js';
export * from './certificate.js';
export * from './channel.js';
export * from './handshake.js';
export * from './puzzle.js';
export * from './client/errors.js';
export { EndReasons, placeFrom, readQueueMoved, Routes, TransferOutcomes, waitRange, type QueueEntry, type QueueMoved, type QueueSnapshot, type QueueStatus } from './client/common.js';
export * from './client/connection.js';
export * from './client/seeker.js';
export * from './client/responder.js';
export * from './client/offers.js';
