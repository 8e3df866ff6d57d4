using NSec.Cryptography;

namespace TrustLine.Protocol.Crypto;

/// <summary>
/// A start-up check that the native libsodium under NSec loaded and computes correctly: one RFC 7748 (through NSec and
/// through the raw path of the handshake's ephemeral keys), one RFC 8032 and one RFC 8439 vector (the last through the raw
/// message-key path of the channel). Call <see cref="EnsureWorking"/> at boot so a broken native load fails at once
/// with a sentence, not at the first session (PROTOCOL.md §6).
/// </summary>
public static class CryptoSelfTest
{
    /// <summary>Runs the vectors; null when they pass, otherwise a sentence saying what is wrong.</summary>
    public static string? Run()
    {
        try
        {
            // RFC 7748 §6.1: Alice's private key with Bob's public key.
            using var alice = Key.Import(KeyAgreementAlgorithm.X25519,
                Convert.FromHexString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"), KeyBlobFormat.RawPrivateKey);
            var bob = PublicKey.Import(KeyAgreementAlgorithm.X25519,
                Convert.FromHexString("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), KeyBlobFormat.RawPublicKey);
            using var shared = KeyAgreementAlgorithm.X25519.Agree(alice, bob,
                new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
            if (shared is null || !shared.Export(SharedSecretBlobFormat.RawSharedSecret).AsSpan()
                    .SequenceEqual(Convert.FromHexString("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")))
            {
                return "The X25519 self-test (RFC 7748 §6.1) gave a wrong result: the native cryptography library is broken.";
            }

            // The same vector through the raw path each handshake's ephemeral key takes.
            Span<byte> raw = stackalloc byte[EphemeralKey.Size];
            using (var ephemeral = EphemeralKey.Import(Convert.FromHexString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
            {
                if (!ephemeral.PublicKey.SequenceEqual(Convert.FromHexString("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
                    || !ephemeral.TryAgree(Convert.FromHexString("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), raw)
                    || !raw.SequenceEqual(Convert.FromHexString("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")))
                {
                    return "The X25519 self-test (RFC 7748 §6.1, raw path) gave a wrong result: the native cryptography library is broken.";
                }
            }

            // RFC 8032 §7.1 TEST 2.
            using var signer = Key.Import(SignatureAlgorithm.Ed25519,
                Convert.FromHexString("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"), KeyBlobFormat.RawPrivateKey);
            var signature = SignatureAlgorithm.Ed25519.Sign(signer, [0x72]);
            if (!signature.AsSpan().SequenceEqual(Convert.FromHexString(
                    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")))
            {
                return "The Ed25519 self-test (RFC 8032 §7.1 TEST 2) gave a wrong result: the native cryptography library is broken.";
            }

            // RFC 8439 §2.8.2 through the raw message-key path the channel uses for every envelope.
            var key = Convert.FromHexString("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
            var nonce = Convert.FromHexString("070000004041424344454647");
            var ad = Convert.FromHexString("50515253c0c1c2c3c4c5c6c7");
            var plaintext = System.Text.Encoding.ASCII.GetBytes("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
            var sealedBytes = new byte[plaintext.Length + Wire.TagSize];
            MessageCipher.Encrypt(key, nonce, ad, plaintext, sealedBytes);
            var opened = new byte[plaintext.Length];
            if (!sealedBytes.AsSpan(plaintext.Length).SequenceEqual(Convert.FromHexString("1ae10b594f09e26a7e902ecbd0600691"))
                || !MessageCipher.TryDecrypt(key, nonce, ad, sealedBytes, opened) || !opened.AsSpan().SequenceEqual(plaintext))
            {
                return "The ChaCha20-Poly1305 self-test (RFC 8439 §2.8.2) gave a wrong result: the native cryptography library is broken.";
            }

            return null;
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException or BadImageFormatException or InvalidOperationException)
        {
            return $"The native cryptography library (libsodium, loaded by NSec) could not be used: {e.GetBaseException().Message}";
        }
    }

    /// <summary>Runs the vectors and throws <see cref="InvalidOperationException"/> with the sentence if they fail.</summary>
    public static void EnsureWorking()
    {
        if (Run() is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
    }
}
