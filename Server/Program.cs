using TrustLine.Server.Operations;
using TrustLine.Server.Organisations;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;
using TrustLine.Server.Web;

var builder = WebApplication.CreateBuilder(args);

builder.AddCryptoSelfTest();
builder.AddStore();
builder.AddOrganisations();
builder.AddRelay();
builder.AddOperations();
builder.AddWeb();

var app = builder.Build();

app.UseWebSockets();
app.UseAuthentication();
app.UseAuthorization();
app.MapOperations();
app.MapOrganisations();
app.MapRelay();
app.MapWeb();

app.Run();

/// <summary>The entry point, visible to the integration tests.</summary>
public partial class Program;
