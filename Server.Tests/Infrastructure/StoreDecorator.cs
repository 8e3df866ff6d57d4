using TrustLine.Protocol.Crypto;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>
/// A real store with one seam: a test overrides a member to fail on cue (as Redis does when unreachable)
/// or to pause at a chosen point, so an interleaving of nodes can be replayed exactly.
/// </summary>
internal abstract class StoreDecorator(ISessionStore inner) : ISessionStore
{
    protected ISessionStore Inner => inner;

    public virtual Task<SessionRecord?> GetAsync(Guid id) => inner.GetAsync(id);

    public Task<CreateOutcome> CreateAsync(SessionRecord session, int queueCapacity, int urgentCapacity = int.MaxValue) => inner.CreateAsync(session, queueCapacity, urgentCapacity);

    public virtual Task<Opening> OpenAsync(SessionRecord session, DateTimeOffset timer, int queueCapacity, int urgentCapacity = int.MaxValue) =>
        inner.OpenAsync(session, timer, queueCapacity, urgentCapacity);

    public Task<IReadOnlyList<QueuedSession>> GetQueueAsync(byte[] orgId, int max) => inner.GetQueueAsync(orgId, max);

    public Task<(int Position, int Waiting)> GetQueuePositionAsync(byte[] orgId, Guid id) => inner.GetQueuePositionAsync(orgId, id);

    public Task<QueuePlace> GetPlaceAsync(byte[] orgId, Guid id) => inner.GetPlaceAsync(orgId, id);

    public Task<QueueCounts> GetQueueCountsAsync(byte[] orgId) => inner.GetQueueCountsAsync(orgId);

    public Task<SessionRecord?> ClaimAsync(byte[] orgId, Guid id, string responderId, string connectionId, DateTimeOffset? timer = null) =>
        inner.ClaimAsync(orgId, id, responderId, connectionId, timer);

    public Task<bool> SetAnswerAsync(Guid id, string responderId, byte[] msg2) => inner.SetAnswerAsync(id, responderId, msg2);

    public Task<long?> SetConnectionAsync(Guid id, Party party, string? connectionId, DateTimeOffset? goneAt) => inner.SetConnectionAsync(id, party, connectionId, goneAt);

    public Task<long?> MarkGoneAsync(Guid id, Party party, string connectionId, DateTimeOffset goneAt) => inner.MarkGoneAsync(id, party, connectionId, goneAt);

    public virtual Task<AppendOutcome> AppendEnvelopeAsync(Guid id, Direction direction, ulong sequence, byte[] envelope, DateTimeOffset expiresAt) =>
        inner.AppendEnvelopeAsync(id, direction, sequence, envelope, expiresAt);

    public Task<IReadOnlyList<(ulong Sequence, byte[] Envelope)>> GetEnvelopesAsync(Guid id, Direction direction, long after, int window) =>
        inner.GetEnvelopesAsync(id, direction, after, window);

    public Task<long> AcknowledgeAsync(Guid id, Direction direction, ulong through, int window) => inner.AcknowledgeAsync(id, direction, through, window);

    public Task TouchAsync(Guid id, DateTimeOffset now, DateTimeOffset keyExpiry) => inner.TouchAsync(id, now, keyExpiry);

    public Task<SessionRecord?> DeleteAsync(Guid id, int window) => inner.DeleteAsync(id, window);

    public Task ScheduleAsync(byte[] orgId, Guid id, DateTimeOffset when, DateTimeOffset keyExpiry) => inner.ScheduleAsync(orgId, id, when, keyExpiry);

    public Task<IReadOnlyList<Guid>> GetDueAsync(byte[] orgId, DateTimeOffset now, int max) => inner.GetDueAsync(orgId, now, max);

    public Task<bool> TryTakeTimerAsync(byte[] orgId, Guid id, DateTimeOffset now, DateTimeOffset leaseUntil) => inner.TryTakeTimerAsync(orgId, id, now, leaseUntil);

    public Task CompleteTimerAsync(byte[] orgId, Guid id, DateTimeOffset leaseUntil, DateTimeOffset? next) => inner.CompleteTimerAsync(orgId, id, leaseUntil, next);

    public Task<IReadOnlyList<byte[]>> GetTimerOrganisationsAsync(IReadOnlyCollection<byte[]> serving, DateTimeOffset until) =>
        inner.GetTimerOrganisationsAsync(serving, until);

    public Task<bool> ProposeTransferAsync(Guid id, string responderId, byte[] targetOrgId, DateTimeOffset until, DateTimeOffset now) =>
        inner.ProposeTransferAsync(id, responderId, targetOrgId, until, now);

    public Task<bool> ClearTransferAsync(Guid id, DateTimeOffset until) => inner.ClearTransferAsync(id, until);
}
