# The Application Load Balancer: HTTPS with an ACM certificate, port 80 only redirects; plain
# HTTP forwarding only with allow_plain_http.

resource "aws_lb" "app" {
  # checkov:skip=CKV_AWS_91: access logs would need a bucket of their own; every access to a record is already in the service's hash-chained audit trail
  # checkov:skip=CKV2_AWS_20: port 80 redirects to HTTPS (aws_lb_listener.redirect); checkov also counts the plain_http listener, which exists only with allow_plain_http = true
  # checkov:skip=CKV2_AWS_28: a WAF is a paid policy decision per clinic group; the listener is open to allowed_cidrs only and the app limits sign-in attempts itself
  name                       = "${var.name}-alb"
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = local.subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = true
}

resource "aws_lb_target_group" "app" {
  # checkov:skip=CKV_AWS_378: TLS ends at the load balancer; from there to a server the traffic stays inside the VPC, between two security groups that admit only each other
  name                 = "${var.name}-app"
  port                 = var.app_port
  protocol             = "HTTP"
  vpc_id               = module.network.vpc_id
  deregistration_delay = 30 # a stopping server finishes its requests (granian waits 30 s)

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_acm_certificate" "app" {
  count = local.https ? 1 : 0

  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  count = local.https ? 1 : 0

  zone_id = var.route53_zone_id
  name    = tolist(aws_acm_certificate.app[0].domain_validation_options)[0].resource_record_name
  type    = tolist(aws_acm_certificate.app[0].domain_validation_options)[0].resource_record_type
  records = [tolist(aws_acm_certificate.app[0].domain_validation_options)[0].resource_record_value]
  ttl     = 300
}

resource "aws_acm_certificate_validation" "app" {
  count = local.https ? 1 : 0

  certificate_arn         = aws_acm_certificate.app[0].arn
  validation_record_fqdns = [aws_route53_record.validation[0].fqdn]
}

resource "aws_route53_record" "app" {
  count = local.https ? 1 : 0

  zone_id = var.route53_zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = aws_lb.app.dns_name
    zone_id                = aws_lb.app.zone_id
    evaluate_target_health = true
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.app.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.app[0].certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}

resource "aws_lb_listener" "redirect" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.app.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "plain_http" {
  # checkov:skip=CKV_AWS_2: exists only with allow_plain_http = true, a choice its description warns against; HTTPS is the default
  # checkov:skip=CKV_AWS_103: as above, this listener has no TLS at all by the operator's explicit choice
  count = local.https ? 0 : 1

  load_balancer_arn = aws_lb.app.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}
