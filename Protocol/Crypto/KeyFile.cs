using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NSec.Cryptography;

namespace TrustLine.Protocol.Crypto;

/// <summary>Which key a key file holds.</summary>
public enum KeyKind
{
    /// <summary>An organisation root (kept offline).</summary>
    Root,

    /// <summary>An organisation issuer (on the admin machine).</summary>
    Issuer,

    /// <summary>A counsellor device's responder key (never leaves the device).</summary>
    Responder,
}

/// <summary>Why a key file could not be opened.</summary>
public enum KeyFileError
{
    /// <summary>Opened.</summary>
    None = 0,

    /// <summary>The passphrase is wrong (the file itself is intact).</summary>
    WrongPassphrase,

    /// <summary>The file is not a TrustLine key file, or it was damaged or edited.</summary>
    Damaged,

    /// <summary>The file was written by a newer format version.</summary>
    UnsupportedVersion,
}

/// <summary>Cost of the passphrase hash; the defaults suit an admin or counsellor machine.</summary>
/// <param name="MemoryKiB">Argon2id memory, KiB.</param>
/// <param name="Passes">Argon2id passes.</param>
public sealed record KeyFileCost(int MemoryKiB = 64 * 1024, int Passes = 3)
{
    /// <summary>The default cost: 64 MiB, 3 passes.</summary>
    public static KeyFileCost Default { get; } = new();
}

/// <summary>
/// A private Ed25519 key at rest: the 32-byte seed encrypted with XChaCha20-Poly1305 under a key derived
/// from a passphrase with Argon2id. The file is JSON text with a format version; its clear fields (kind,
/// public key, cost, salt) are bound as associated data, and a checksum over the whole file tells a
/// damaged file from a wrong passphrase.
/// </summary>
public static class KeyFile
{
    /// <summary>The format version this library writes and reads.</summary>
    public const int Version = 1;

    private const string Format = "trustline-private-key";
    private const int SaltSize = 16;
    private const int MaxMemoryKiB = 1024 * 1024;
    private const int MaxPasses = 16;

    /// <summary>
    /// Creates a new Ed25519 key and returns the key file text. <paramref name="key"/> is the live key; the
    /// caller disposes it.
    /// </summary>
    public static string Create(KeyKind kind, string passphrase, out Key key, KeyFileCost? cost = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(passphrase);
        var seed = GC.AllocateArray<byte>(32, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(seed);
            key = Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);
            return Protect(kind, seed, key.PublicKey.Export(KeyBlobFormat.RawPublicKey), passphrase, cost ?? KeyFileCost.Default);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>Opens key file text with its passphrase. On success the caller owns and disposes <paramref name="key"/>.</summary>
    public static KeyFileError TryOpen(string text, string passphrase, out KeyKind kind, out Key? key)
    {
        ArgumentNullException.ThrowIfNull(passphrase);
        kind = default;
        key = null;
        if (!TryRead(text, out var file, out var versionError))
        {
            return versionError;
        }

        kind = file.Kind;
        if (!CryptographicOperations.FixedTimeEquals(file.Check, Checksum(file.AssociatedData, file.Nonce, file.Ciphertext)))
        {
            return KeyFileError.Damaged;
        }

        var seed = GC.AllocateArray<byte>(32, pinned: true);
        try
        {
            using var wrapping = DeriveWrappingKey(passphrase, file.Salt, new KeyFileCost(file.MemoryKiB, file.Passes));
            if (file.Ciphertext.Length != 32 + 16
                || !AeadAlgorithm.XChaCha20Poly1305.Decrypt(wrapping, file.Nonce, file.AssociatedData, file.Ciphertext, seed))
            {
                return KeyFileError.WrongPassphrase;
            }

            var opened = Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);
            if (!opened.PublicKey.Export(KeyBlobFormat.RawPublicKey).AsSpan().SequenceEqual(file.PublicKey))
            {
                opened.Dispose();
                return KeyFileError.Damaged;
            }

            key = opened;
            return KeyFileError.None;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>Reads the public key and kind of a key file without the passphrase; false if it is not a readable key file.</summary>
    public static bool TryReadPublic(string text, out KeyKind kind, out byte[] publicKey)
    {
        kind = default;
        publicKey = [];
        if (!TryRead(text, out var file, out _))
        {
            return false;
        }

        kind = file.Kind;
        publicKey = file.PublicKey;
        return true;
    }

    /// <summary>A sentence for an error, for people.</summary>
    public static string Describe(KeyFileError error) => error switch
    {
        KeyFileError.None => "The key file opened.",
        KeyFileError.WrongPassphrase => "The passphrase is wrong for this key file.",
        KeyFileError.Damaged => "The key file is damaged or is not a TrustLine key file.",
        KeyFileError.UnsupportedVersion => $"The key file was written by a newer TrustLine (this one reads version {Version}).",
        _ => "The key file could not be opened.",
    };

    private static string Protect(KeyKind kind, ReadOnlySpan<byte> seed, byte[] publicKey, string passphrase, KeyFileCost cost)
    {
        var salt = RandomNumberGenerator.GetBytes(SaltSize);
        var nonce = RandomNumberGenerator.GetBytes(AeadAlgorithm.XChaCha20Poly1305.NonceSize);
        var associatedData = AssociatedData(kind, publicKey, cost.MemoryKiB, cost.Passes, salt);
        using var wrapping = DeriveWrappingKey(passphrase, salt, cost);
        var ciphertext = AeadAlgorithm.XChaCha20Poly1305.Encrypt(wrapping, nonce, associatedData, seed);
        var json = new JsonObject
        {
            ["format"] = Format,
            ["version"] = Version,
            ["kind"] = kind.ToString().ToLowerInvariant(),
            ["publicKey"] = Convert.ToHexStringLower(publicKey),
            ["kdf"] = new JsonObject { ["name"] = "argon2id", ["memoryKiB"] = cost.MemoryKiB, ["passes"] = cost.Passes, ["salt"] = Convert.ToBase64String(salt) },
            ["cipher"] = "xchacha20-poly1305",
            ["nonce"] = Convert.ToBase64String(nonce),
            ["ciphertext"] = Convert.ToBase64String(ciphertext),
            ["check"] = Convert.ToHexStringLower(Checksum(associatedData, nonce, ciphertext)),
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    private static bool TryRead(string text, out FileFields file, out KeyFileError error)
    {
        file = default;
        error = KeyFileError.Damaged;
        try
        {
            if (JsonNode.Parse(text) is not JsonObject json || (string?)json["format"] != Format)
            {
                return false;
            }

            if ((int?)json["version"] is not { } version || version != Version)
            {
                error = json["version"] is null ? KeyFileError.Damaged : KeyFileError.UnsupportedVersion;
                return false;
            }

            var kdf = json["kdf"] as JsonObject;
            if (!Enum.TryParse<KeyKind>((string?)json["kind"], ignoreCase: true, out var kind)
                || !Enum.IsDefined(kind)
                || (string?)kdf?["name"] != "argon2id"
                || (string?)json["cipher"] != "xchacha20-poly1305"
                || (int?)kdf["memoryKiB"] is not { } memory || memory is < 8 or > MaxMemoryKiB
                || (int?)kdf["passes"] is not { } passes || passes is < 1 or > MaxPasses)
            {
                return false;
            }

            var publicKey = Convert.FromHexString((string?)json["publicKey"] ?? "");
            var salt = Convert.FromBase64String((string?)kdf["salt"] ?? "");
            var nonce = Convert.FromBase64String((string?)json["nonce"] ?? "");
            var ciphertext = Convert.FromBase64String((string?)json["ciphertext"] ?? "");
            var check = Convert.FromHexString((string?)json["check"] ?? "");
            if (publicKey.Length != 32 || salt.Length != SaltSize || nonce.Length != AeadAlgorithm.XChaCha20Poly1305.NonceSize || check.Length != 16)
            {
                return false;
            }

            file = new FileFields(kind, publicKey, memory, passes, salt, nonce, ciphertext, check,
                AssociatedData(kind, publicKey, memory, passes, salt));
            error = KeyFileError.None;
            return true;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or ArgumentException)
        {
            return false;
        }
    }

    private static Key DeriveWrappingKey(string passphrase, ReadOnlySpan<byte> salt, KeyFileCost cost)
    {
        var argon = PasswordBasedKeyDerivationAlgorithm.Argon2id(new Argon2Parameters
        {
            DegreeOfParallelism = 1,
            MemorySize = cost.MemoryKiB,
            NumberOfPasses = cost.Passes,
        });
        return argon.DeriveKey(passphrase, salt, AeadAlgorithm.XChaCha20Poly1305);
    }

    private static byte[] AssociatedData(KeyKind kind, byte[] publicKey, int memoryKiB, int passes, byte[] salt) =>
        Encoding.UTF8.GetBytes($"{Format}/v{Version}|{kind.ToString().ToLowerInvariant()}|{Convert.ToHexStringLower(publicKey)}|argon2id|{memoryKiB}|{passes}|{Convert.ToBase64String(salt)}|xchacha20-poly1305");

    private static byte[] Checksum(byte[] associatedData, byte[] nonce, byte[] ciphertext)
    {
        var all = new byte[associatedData.Length + nonce.Length + ciphertext.Length];
        associatedData.CopyTo(all, 0);
        nonce.CopyTo(all, associatedData.Length);
        ciphertext.CopyTo(all, associatedData.Length + nonce.Length);
        return NSec.Cryptography.HashAlgorithm.Sha256.Hash(all)[..16];
    }

    private readonly record struct FileFields(
        KeyKind Kind, byte[] PublicKey, int MemoryKiB, int Passes, byte[] Salt, byte[] Nonce, byte[] Ciphertext, byte[] Check, byte[] AssociatedData);
}
