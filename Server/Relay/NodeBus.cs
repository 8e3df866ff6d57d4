using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.SignalR;
using StackExchange.Redis;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Relay;

/// <summary>
/// Carries hub messages between nodes over Redis pub/sub, in place of SignalR's Redis backplane: one channel per
/// node (<c>&lt;prefix&gt;:node:&lt;id&gt;</c>) for messages to one of its connections, and one channel every node
/// reads (<c>&lt;prefix&gt;:groups</c>) for group messages. A node subscribes to these two channels once, at start;
/// a connection costs no subscription, no Redis command and no memory beyond its own node.
/// </summary>
/// <remarks>
/// Each channel's messages are handled one after the other, in the order Redis delivered them, so what one node
/// sends to a connection arrives in order. On a single node (embedded store) there is no bus and every address is
/// local.
/// </remarks>
public sealed class NodeBus(IServiceProvider services, StoreMode mode, RedisKeys keys, ThisNode node, ILogger<NodeBus> logger)
{
    /// <summary>How long a group change for a connection on another node waits for that node's answer.</summary>
    public static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(5);

    private readonly IConnectionMultiplexer? redis = mode.Kind == StoreKind.Redis ? services.GetRequiredService<IConnectionMultiplexer>() : null;
    private readonly Lock registering = new();
    private readonly ConcurrentDictionary<string, RedisChannel> nodeChannels = new(StringComparer.Ordinal);
    private readonly byte[] nodeId = Encoding.UTF8.GetBytes(node.Id);
    private (byte[] Name, INodeHub Manager)[] hubs = [];
    private readonly ConcurrentDictionary<int, TaskCompletionSource> acks = new();
    private int lastAck;
    private bool nodeHeard;
    private bool groupsHeard;

    private const int MostNodeChannelsKept = 256;

    /// <summary>A node's channel, made once per node (a restarted node has a new id; past a bound, made afresh).</summary>
    private RedisChannel NodeChannel(string id)
    {
        if (nodeChannels.TryGetValue(id, out var known))
        {
            return known;
        }

        var made = RedisChannel.Literal($"{keys.Prefix}:node:{id}");
        return nodeChannels.Count < MostNodeChannelsKept ? nodeChannels.GetOrAdd(id, made) : made;
    }

    private RedisChannel GroupChannel => RedisChannel.Literal($"{keys.Prefix}:groups");

    internal void Register(string hub, INodeHub manager)
    {
        lock (registering)
        {
            hubs = [.. hubs.Where(h => !h.Name.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(hub))), (Encoding.UTF8.GetBytes(hub), manager)];
        }
    }

    private INodeHub? HubNamed(ReadOnlySpan<byte> name)
    {
        foreach (var (known, manager) in hubs)
        {
            if (name.SequenceEqual(known))
            {
                return manager;
            }
        }

        return null;
    }

    /// <summary>
    /// Subscribes this node's two channels (a no-op on a single node). Called again after a failure, it subscribes
    /// only what is missing: a channel subscribed twice would deliver each message twice. The client subscribes
    /// them again by itself after a reconnect.
    /// </summary>
    public async Task SubscribeAsync()
    {
        if (redis is null)
        {
            return;
        }

        var subscriber = redis.GetSubscriber();
        if (!nodeHeard)
        {
            (await Subscriptions.SubscribeOrForgetAsync(subscriber, NodeChannel(node.Id), () => subscriber.SubscribeAsync(NodeChannel(node.Id))))
                .OnMessage(message => Receive(message.Message));
            nodeHeard = true;
        }

        if (!groupsHeard)
        {
            (await Subscriptions.SubscribeOrForgetAsync(subscriber, GroupChannel, () => subscriber.SubscribeAsync(GroupChannel)))
                .OnMessage(message => Receive(message.Message));
            groupsHeard = true;
        }
    }

    /// <summary>A message for <paramref name="connectionId"/> of <paramref name="hub"/> on node <paramref name="toNode"/>.</summary>
    public Task SendAsync(string toNode, string hub, string connectionId, IReadOnlyList<SerializedMessage> frames)
    {
        var wire = NodeWire.Start(NodeMessageKind.Send);
        wire.String(hub);
        wire.String(connectionId);
        wire.Frames(frames);
        return PublishAsync(NodeChannel(toNode), wire);
    }

    /// <summary>A message for the group <paramref name="group"/> of <paramref name="hub"/> on every other node.</summary>
    public Task SendGroupAsync(string hub, string group, IReadOnlyList<SerializedMessage> frames)
    {
        if (redis is null)
        {
            return Task.CompletedTask;
        }

        var wire = NodeWire.Start(NodeMessageKind.Group);
        wire.String(hub);
        wire.String(node.Id);
        wire.String(group);
        wire.Frames(frames);
        return PublishAsync(GroupChannel, wire);
    }

    /// <summary>Adds or removes a connection on node <paramref name="toNode"/> to or from a group, and waits for that node's answer.</summary>
    public async Task ChangeGroupAsync(string toNode, string hub, string connectionId, string group, bool add, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref lastAck);
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        acks[id] = answered;
        try
        {
            var wire = NodeWire.Start(add ? NodeMessageKind.JoinGroup : NodeMessageKind.LeaveGroup);
            wire.String(hub);
            wire.String(node.Id);
            wire.Int(id);
            wire.String(connectionId);
            wire.String(group);
            if (await PublishAsync(NodeChannel(toNode), wire) == 0)
            {
                // Nobody reads that node's channel: the node is gone, and its connections with it.
                throw new IOException("The connection's node is gone.");
            }

            await answered.Task.WaitAsync(AckTimeout, cancellationToken);
        }
        finally
        {
            acks.TryRemove(id, out _);
        }
    }

    /// <summary>Publishes a message; the answer is how many nodes' subscriptions received it.</summary>
    private Task<long> PublishAsync(RedisChannel channel, NodeWire wire) =>
        redis is null
            ? throw new InvalidOperationException("There is no other node to send to without Redis.")
            : redis.GetSubscriber().PublishAsync(channel, wire.ToArray());

    private void Receive(RedisValue value)
    {
        try
        {
            var reader = new NodeReader((byte[]?)value ?? []);
            var kind = reader.Kind();
            if (kind == NodeMessageKind.Ack)
            {
                if (acks.TryRemove(reader.Int(), out var answered))
                {
                    answered.TrySetResult();
                }

                return;
            }

            var manager = HubNamed(reader.Bytes());
            switch (kind)
            {
                case NodeMessageKind.Send:
                    var to = reader.Bytes();
                    manager?.DeliverToConnection(to, reader.Frames());
                    break;
                case NodeMessageKind.Group:
                    if (!reader.Bytes().SequenceEqual(nodeId))
                    {
                        manager?.DeliverToGroup(reader.String(), reader.Frames());
                    }

                    break;
                case NodeMessageKind.JoinGroup or NodeMessageKind.LeaveGroup:
                    var from = reader.String();
                    var ack = reader.Int();
                    var connection = reader.String();
                    var group = reader.String();
                    manager?.ChangeLocalGroup(connection, group, kind == NodeMessageKind.JoinGroup);
                    var answer = NodeWire.Start(NodeMessageKind.Ack);
                    answer.Int(ack);
                    _ = ObserveAsync(PublishAsync(NodeChannel(from), answer));
                    break;
                default:
                    NodeLog.Unreadable(logger);
                    break;
            }
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or InvalidDataException or DecoderFallbackException or InvalidCastException)
        {
            NodeLog.Unreadable(logger);
        }
    }

    private async Task ObserveAsync(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            NodeLog.AnswerFailed(logger, e.GetType().Name);
        }
    }
}

/// <summary>Subscribing to Redis pub/sub channels so that a failed attempt leaves nothing behind.</summary>
internal static class Subscriptions
{
    /// <summary>
    /// Subscribes; when that fails (Redis is down at start), drops what the client had already registered for the
    /// channel, and rethrows for the caller to try again. Left registered, the client would subscribe it by itself
    /// on reconnect: a message queue nobody reads would fill without bound, and a handler would hear every message
    /// twice once the next attempt added another.
    /// </summary>
    public static async Task<T> SubscribeOrForgetAsync<T>(ISubscriber subscriber, RedisChannel channel, Func<Task<T>> subscribe)
    {
        try
        {
            return await subscribe();
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            try
            {
                await subscriber.UnsubscribeAsync(channel); // with no handler named: every registration for the channel goes
            }
            catch (Exception again) when (again is RedisException or TimeoutException)
            {
                // The client forgets the registration before it asks the server, so the server's answer does not matter.
            }

            throw;
        }
    }
}

/// <summary>What a node's lifetime manager does with a message from another node.</summary>
internal interface INodeHub
{
    /// <summary>A message for one of this node's connections, named by its id's UTF-8 bytes (read without a string).</summary>
    void DeliverToConnection(ReadOnlySpan<byte> connectionId, SerializedHubMessage message);

    void DeliverToGroup(string group, SerializedHubMessage message);

    void ChangeLocalGroup(string connectionId, string group, bool add);
}

internal enum NodeMessageKind : byte
{
    Send = 1,
    Group = 2,
    JoinGroup = 3,
    LeaveGroup = 4,
    Ack = 5,
}

/// <summary>
/// Writes a node message: a kind byte, then strings (length-prefixed UTF-8), numbers and the invocation already
/// serialized once per hub protocol, so the receiving node writes it to its connection as it is. The message is
/// built in a buffer kept per thread (nothing awaits while it is written) and copied out once, at its exact size.
/// </summary>
internal readonly struct NodeWire
{
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? kept;

    private readonly ArrayBufferWriter<byte> buffer;

    private NodeWire(ArrayBufferWriter<byte> buffer) => this.buffer = buffer;

    public static NodeWire Start(NodeMessageKind kind)
    {
        var buffer = kept ??= new ArrayBufferWriter<byte>(512);
        buffer.ResetWrittenCount();
        buffer.Write([(byte)kind]);
        return new NodeWire(buffer);
    }

    public void Int(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(buffer.GetSpan(4), value);
        buffer.Advance(4);
    }

    public void String(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        Int(length);
        buffer.Advance(Encoding.UTF8.GetBytes(value, buffer.GetSpan(length)));
    }

    public void Frames(IReadOnlyList<SerializedMessage> frames)
    {
        Int(frames.Count);
        foreach (var frame in frames)
        {
            String(frame.ProtocolName);
            Int(frame.Serialized.Length);
            buffer.Write(frame.Serialized.Span);
        }
    }

    public byte[] ToArray() => buffer.WrittenSpan.ToArray();
}

/// <summary>Reads what <see cref="NodeWire"/> wrote; a short or malformed message throws <see cref="InvalidDataException"/>.</summary>
internal struct NodeReader(byte[] data)
{
    private int at;

    public NodeMessageKind Kind() => (NodeMessageKind)Take(1)[0];

    public int Int()
    {
        var value = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        return value;
    }

    public string String() => Encoding.UTF8.GetString(Take(Length()));

    /// <summary>A string's bytes, not decoded.</summary>
    public ReadOnlySpan<byte> Bytes() => Take(Length());

    public SerializedHubMessage Frames()
    {
        var count = Length();
        var frames = new SerializedMessage[count];
        for (var i = 0; i < count; i++)
        {
            var protocol = String();
            var length = Length();
            frames[i] = new SerializedMessage(protocol, data.AsMemory(at, length));
            Take(length);
        }

        return new SerializedHubMessage(frames);
    }

    private int Length()
    {
        var length = Int();
        return length < 0 || length > data.Length - at ? throw new InvalidDataException("A length runs past the message.") : length;
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > data.Length - at)
        {
            throw new InvalidDataException("The message is shorter than it says.");
        }

        var span = data.AsSpan(at, count);
        at += count;
        return span;
    }
}

internal static partial class NodeLog
{
    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "A message from another node could not be read and was dropped.")]
    public static partial void Unreadable(ILogger logger);

    [LoggerMessage(EventId = 61, Level = LogLevel.Warning, Message = "Answering another node's group change failed: {Error}.")]
    public static partial void AnswerFailed(ILogger logger, string error);
}
