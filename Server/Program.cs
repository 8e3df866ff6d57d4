using TrustLine.Server.Admission;
using TrustLine.Server.Limits;
using TrustLine.Server.Offers;
using TrustLine.Server.Operations;
using TrustLine.Server.Operations.Metrics;
using TrustLine.Server.Organisations;
using TrustLine.Server.Relay;
using TrustLine.Server.Responders;
using TrustLine.Server.Storage;
using TrustLine.Server.Transfers;
using TrustLine.Server.Web;

var builder = WebApplication.CreateBuilder(args);

builder.AddCryptoSelfTest();
builder.AddStore();
builder.AddOrganisations();
builder.AddAdmission();
builder.AddSignIn();
builder.AddRelay();
builder.AddTransfers();
builder.AddOffers();
builder.AddLimits();
builder.AddOperations();
builder.AddWeb();

var app = builder.Build();
if (!app.SettingsAreValid())
{
    return StartupCheck.BadSettingExitCode;
}

app.UseManagementListener();
app.UseLimits();
app.UseWebSockets();
app.UseAuthentication();
app.UseAuthorization();
app.MapOperations();
app.MapOrganisations();
app.MapRelay();
app.MapWeb();

app.Run();
return 0;

/// <summary>The entry point, visible to the integration tests.</summary>
public partial class Program;
