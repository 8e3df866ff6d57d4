using TrustLine.Server.Storage;

namespace TrustLine.Server.Tests.Storage;

/// <summary>A session record as an open makes it (queued, not urgent, Dutch, no topic), for store and reaper tests.</summary>
internal static class TestSessions
{
    public static SessionRecord Waiting(byte[] orgId, DateTimeOffset now, TimeSpan lifetime) => new()
    {
        Id = Guid.NewGuid(),
        OrgId = orgId,
        Language = "nl",
        Topic = "",
        Urgent = false,
        Msg1 = new byte[67],
        ResumeTokenHash = new byte[32],
        CreatedAt = now,
        Deadline = now + lifetime,
        LastActivity = now,
    };
}
