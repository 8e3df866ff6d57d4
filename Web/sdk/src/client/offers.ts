// Offers, availability and capacity on the responder hub (docs/protocol.md): the DTOs as MessagePack arrays.

/** A waiting session offered to this connection alone. */
export interface Offer {
  sessionId: Uint8Array;
  language: string;
  topic: string;
  urgent: boolean;
  waitingSeconds: number;
  /** Whole seconds left to accept or decline. */
  expiresInSeconds: number;
}

/** A responder connection's availability, open chats and capacity (0: no limit). */
export interface ResponderStatus {
  available: boolean;
  openChats: number;
  capacity: number;
  /** Whether the organisation offers sessions at all (otherwise counsellors take them). */
  offersOn: boolean;
  /** Why the server changed the availability (`lapsed`), or empty when the counsellor did. */
  reason: string;
}

/** Why an offer ended without an accept, and why the server set a counsellor away. */
export const OfferEndReasons = {
  lapsed: 'lapsed',
  declined: 'declined',
  gone: 'gone',
  away: 'away',
} as const;

const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));

export function readOffer(value: unknown): Offer {
  const a = (Array.isArray(value) ? value : []) as unknown[];
  return {
    sessionId: bytes(a[0]), language: String(a[1] ?? ''), topic: String(a[2] ?? ''), urgent: a[3] === true,
    waitingSeconds: Number(a[4] ?? 0), expiresInSeconds: Number(a[5] ?? 0),
  };
}

export function readResponderStatus(value: unknown): ResponderStatus {
  const a = (Array.isArray(value) ? value : []) as unknown[];
  return { available: a[0] === true, openChats: Number(a[1] ?? 0), capacity: Number(a[2] ?? 0), offersOn: a[3] === true, reason: String(a[4] ?? '') };
}
