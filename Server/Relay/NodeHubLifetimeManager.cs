using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Options;

namespace TrustLine.Server.Relay;

/// <summary>
/// SignalR's lifetime manager for TrustLine's hubs: this node's connections and groups in memory, and, through the
/// <see cref="NodeBus"/>, a message for an address on another node sent to that node alone, and group messages to
/// every node. It takes the place of the Redis backplane, which subscribed a channel for every connection.
/// </summary>
/// <remarks>
/// A connection is named by its address (<see cref="ThisNode"/>); a bare connection id is this node's. Sends to a
/// user (TrustLine has no users) and client results are not supported.
/// </remarks>
public sealed class NodeHubLifetimeManager<THub> : HubLifetimeManager<THub>, INodeHub where THub : Hub
{
    private const int MaxConnectionIdLength = 64;

    private static readonly string HubName = typeof(THub).Name;

    private readonly ConcurrentDictionary<string, HubConnectionContext> connections = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, HubConnectionContext>.AlternateLookup<ReadOnlySpan<char>> connectionsBySpan;
    private readonly ConcurrentDictionary<string, HubConnectionStore> groups = new(StringComparer.Ordinal);

    /// <summary>
    /// Per connection and group, a group message still being written (the connection reads slowly, or not at all) and
    /// the newest one waiting behind it.
    /// </summary>
    private readonly ConcurrentDictionary<(HubConnectionContext Connection, string Group), GroupWrite> groupWrites = new();
    private readonly NodeBus bus;
    private readonly ThisNode node;
    private readonly IHubProtocol[] protocols;

    public NodeHubLifetimeManager(NodeBus bus, ThisNode node, IHubProtocolResolver protocols, IOptions<HubOptions> global, IOptions<HubOptions<THub>> hub)
    {
        this.bus = bus;
        this.node = node;
        var supported = hub.Value.SupportedProtocols ?? global.Value.SupportedProtocols ?? [];
        this.protocols = [.. protocols.AllProtocols.Where(p => supported.Contains(p.Name))];
        connectionsBySpan = connections.GetAlternateLookup<ReadOnlySpan<char>>();
        bus.Register(HubName, this);
    }

    public override Task OnConnectedAsync(HubConnectionContext connection)
    {
        connections[connection.ConnectionId] = connection;
        return Task.CompletedTask;
    }

    public override Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        connections.TryRemove(connection.ConnectionId, out _);
        foreach (var (group, members) in groups)
        {
            members.Remove(connection);
            groupWrites.TryRemove((connection, group), out _);
        }

        return Task.CompletedTask;
    }

    public override Task SendConnectionAsync(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        if (node.IsLocal(connectionId, out var local))
        {
            return connectionsBySpan.TryGetValue(local, out var connection)
                ? connection.WriteAsync(new InvocationMessage(methodName, args), cancellationToken).AsTask()
                : Task.CompletedTask;
        }

        var (to, id) = ThisNode.Split(connectionId);
        return bus.SendAsync(to!, HubName, id, Serialize(new InvocationMessage(methodName, args)));
    }

    public override Task SendConnectionsAsync(IReadOnlyList<string> connectionIds, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        Task.WhenAll(connectionIds.Select(id => SendConnectionAsync(id, methodName, args, cancellationToken)));

    public override Task SendGroupAsync(string groupName, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendGroupsAsync([groupName], methodName, args, cancellationToken);

    public override Task SendGroupsAsync(IReadOnlyList<string> groupNames, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        var frames = Serialize(new InvocationMessage(methodName, args));
        var message = new SerializedHubMessage(frames);
        var sends = new List<Task>(groupNames.Count);
        foreach (var group in groupNames)
        {
            ArgumentException.ThrowIfNullOrEmpty(group);
            WriteGroup(group, message, cancellationToken);
            sends.Add(bus.SendGroupAsync(HubName, group, frames));
        }

        return Task.WhenAll(sends);
    }

    public override Task AddToGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        ChangeGroupAsync(connectionId, groupName, add: true, cancellationToken);

    public override Task RemoveFromGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        ChangeGroupAsync(connectionId, groupName, add: false, cancellationToken);

    public override Task SendAllAsync(string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("TrustLine sends to connections and groups only.");

    public override Task SendAllExceptAsync(string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("TrustLine sends to connections and groups only.");

    public override Task SendGroupExceptAsync(string groupName, string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("TrustLine sends to connections and groups only.");

    public override Task SendUserAsync(string userId, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("TrustLine has no users to send to.");

    public override Task SendUsersAsync(IReadOnlyList<string> userIds, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("TrustLine has no users to send to.");

    void INodeHub.DeliverToConnection(ReadOnlySpan<byte> connectionId, SerializedHubMessage message)
    {
        // SignalR's connection ids are short ASCII (base64url): looked up from the message's bytes without a string.
        Span<char> id = stackalloc char[MaxConnectionIdLength];
        if (connectionId.Length <= MaxConnectionIdLength
            && System.Text.Encoding.ASCII.GetChars(connectionId, id) is var length
            && connectionsBySpan.TryGetValue(id[..length], out var connection))
        {
            // Not awaited: one slow phone must not hold up this node's other messages. Writes to one connection
            // still keep their order (the connection's write lock queues them as they come).
            Observe(connection.WriteAsync(message));
        }
    }

    void INodeHub.DeliverToGroup(string group, SerializedHubMessage message) => WriteGroup(group, message, default);

    void INodeHub.ChangeLocalGroup(string connectionId, string group, bool add) => ChangeLocal(connectionId, group, add);

    private Task ChangeGroupAsync(string address, string group, bool add, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentException.ThrowIfNullOrEmpty(group);
        if (node.IsLocal(address, out var local))
        {
            ChangeLocal(local, group, add);
            return Task.CompletedTask;
        }

        var (to, id) = ThisNode.Split(address);
        return bus.ChangeGroupAsync(to!, HubName, id, group, add, cancellationToken);
    }

    private void ChangeLocal(ReadOnlySpan<char> connectionId, string group, bool add)
    {
        if (!connectionsBySpan.TryGetValue(connectionId, out var connection))
        {
            return;
        }

        if (add)
        {
            groups.GetOrAdd(group, _ => new HubConnectionStore()).Add(connection);
            if (!connections.ContainsKey(connection.ConnectionId))
            {
                // It disconnected while joining, after the disconnect had left every group: leave again.
                groups[group].Remove(connection);
            }
        }
        else if (groups.TryGetValue(group, out var members))
        {
            members.Remove(connection);
        }
    }

    /// <summary>
    /// Writes a group message to this node's members without waiting for any: a member that stops reading (its
    /// buffers full) must not hold up the organisation's notices to everyone else. Group messages are queue notices,
    /// each the whole state, so while one is still being written to a member, a newer one waits behind it in its
    /// place and replaces any older one waiting there: a phone that never reads holds two notices, not one per
    /// change, and every member gets the newest.
    /// </summary>
    private void WriteGroup(string group, SerializedHubMessage message, CancellationToken cancellationToken)
    {
        if (!groups.TryGetValue(group, out var members))
        {
            return;
        }

        foreach (var connection in members)
        {
            if (groupWrites.TryGetValue((connection, group), out var busy) && busy.Replace(message))
            {
                continue;
            }

            Write(connection, group, message, cancellationToken);
        }
    }

    private void Write(HubConnectionContext connection, string group, SerializedHubMessage message, CancellationToken cancellationToken)
    {
        var write = connection.WriteAsync(message, cancellationToken);
        if (write.IsCompletedSuccessfully) // a connection's writes are plain tasks, nothing to hand back when done
        {
            return;
        }

        var slot = new GroupWrite();
        if (!groupWrites.TryAdd((connection, group), slot))
        {
            Observe(write); // another write of this group is tracked already; this one just finishes
            return;
        }

        _ = DrainAsync(write.AsTask());

        // Only this loop writes to the connection for the group while the slot lives, so the newest message goes last.
        async Task DrainAsync(Task pending)
        {
            while (true)
            {
                try
                {
                    await pending;
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
                {
                    // The connection is closing: it hears nothing more.
                }

                if (slot.TakeNext() is not { } next)
                {
                    groupWrites.TryRemove(KeyValuePair.Create((connection, group), slot));
                    return;
                }

                var again = connection.WriteAsync(next, CancellationToken.None);
                pending = again.IsCompletedSuccessfully ? Task.CompletedTask : again.AsTask();
            }
        }
    }

    /// <summary>The invocation in every protocol the hub speaks (TrustLine's speak MessagePack only): serialized once for all its receivers.</summary>
    private SerializedMessage[] Serialize(HubMessage message)
    {
        var frames = new SerializedMessage[protocols.Length];
        for (var i = 0; i < frames.Length; i++)
        {
            frames[i] = new SerializedMessage(protocols[i].Name, protocols[i].GetMessageBytes(message));
        }

        return frames;
    }

    private static void Observe(ValueTask write)
    {
        if (write.IsCompletedSuccessfully)
        {
            return;
        }

        _ = write.AsTask().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}

/// <summary>A group message being written to one connection, and the newest one waiting behind it.</summary>
internal sealed class GroupWrite
{
    private readonly Lock gate = new();
    private SerializedHubMessage? next;
    private bool finished;

    /// <summary>Puts <paramref name="message"/> behind the write in flight, in place of any waiting; false once the slot is done.</summary>
    public bool Replace(SerializedHubMessage message)
    {
        lock (gate)
        {
            if (finished)
            {
                return false;
            }

            next = message;
            return true;
        }
    }

    /// <summary>The write in flight finished: the message waiting behind it, to write next; or null, and the slot is done.</summary>
    public SerializedHubMessage? TakeNext()
    {
        lock (gate)
        {
            var taken = next;
            next = null;
            finished = taken is null;
            return taken;
        }
    }
}
