namespace TrustLine.Protocol.Crypto;

/// <summary>Direction of an envelope (PROTOCOL.md §3).</summary>
public enum Direction : byte
{
    /// <summary>Seeker to responder.</summary>
    ClientToServer = 0x01,

    /// <summary>Responder to seeker.</summary>
    ServerToClient = 0x02,
}

/// <summary>
/// The clear header of an envelope: all the relay may read (PROTOCOL.md §5). Parsing checks the envelope
/// size, version, type and direction; it does not authenticate anything.
/// </summary>
public readonly record struct EnvelopeHeader(Direction Direction, Guid SessionId, ulong Sequence, int Size)
{
    /// <summary>Reads the header of <paramref name="envelope"/>; false if the size, version, type or direction is not v1's.</summary>
    public static bool TryParse(ReadOnlySpan<byte> envelope, out EnvelopeHeader header)
    {
        header = default;
        if (!Wire.IsEnvelopeSize(envelope.Length)
            || envelope[0] != Wire.Version
            || envelope[1] != Wire.TypeData
            || envelope[2] is not ((byte)Direction.ClientToServer or (byte)Direction.ServerToClient))
        {
            return false;
        }

        header = new EnvelopeHeader(
            (Direction)envelope[2],
            new Guid(envelope.Slice(3, Wire.SessionIdSize), bigEndian: true),
            Wire.ReadUInt64(envelope.Slice(19, 8)),
            envelope.Length);
        return true;
    }

    /// <summary>Writes a header into the first 27 bytes of <paramref name="destination"/>.</summary>
    internal static void Write(Span<byte> destination, Direction direction, ReadOnlySpan<byte> sessionId, ulong sequence)
    {
        destination[0] = Wire.Version;
        destination[1] = Wire.TypeData;
        destination[2] = (byte)direction;
        sessionId.CopyTo(destination.Slice(3, Wire.SessionIdSize));
        Wire.WriteUInt64(destination.Slice(19, 8), sequence);
    }
}
